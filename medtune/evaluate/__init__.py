"""Evaluate: generate with base and tuned models, score open answers, run benchmark suites."""
