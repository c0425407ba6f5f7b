# The two set-up commands from the README. Each refreshes .venv and installs what it needs.
.PHONY: run test

run:
	bash scripts/setup_venv.sh run
	.venv/bin/veraclaim-chat embedded

test:
	bash scripts/setup_venv.sh test
	.venv/bin/python -m pytest
