"""Training data built from a run's training rows: KnowTuning's fact-level QA pairs and preference pairs."""
