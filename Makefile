# The two commands of the README. Both set everything up first (idempotent).
.PHONY: run test setup

run: setup
	.venv/bin/gridsentinel demo

test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh
