"""The harness's own prompt functions, re-exported so our task files use them unchanged (no drift)."""
from lm_eval.tasks.medmcqa.utils_medmcqa import doc_to_text as medmcqa_doc_to_text  # noqa: F401
from lm_eval.tasks.medqa.preprocess_medqa import doc_to_target as medqa_doc_to_target  # noqa: F401
from lm_eval.tasks.medqa.preprocess_medqa import doc_to_text as medqa_doc_to_text  # noqa: F401
from lm_eval.tasks.pubmedqa.preprocess_pubmedqa import doc_to_text as pubmedqa_doc_to_text  # noqa: F401
