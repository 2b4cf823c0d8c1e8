"""Preprocess: medical QA sources -> normalized records -> chat-template JSONL with splits and a manifest."""
