# Entry points (see README.md). `make chaos CHAOS_ROUNDS=5` for a shorter chaos run.
CHAOS_ROUNDS ?= 20

.PHONY: test chaos

test:
	./scripts/test.sh

chaos:
	./scripts/chaos.sh $(CHAOS_ROUNDS)
