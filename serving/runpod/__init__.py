"""Deploy TGI with Qwen3 to a RunPod GPU pod, from runpod.toml, with the `runpod` SDK."""
