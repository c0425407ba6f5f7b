"""Model serving: the local CPU engine, the TGI deployment and the streaming client."""
