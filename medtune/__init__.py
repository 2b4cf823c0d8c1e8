"""medtune: declarative YAML recipes for fine-tuning small open LLMs on medical QA with Axolotl."""

__version__ = "0.1.0"
