"""The contract's two classes; a leaf module, so the corpus builder needs nothing else of service."""

AI = "AI_GENERATED"
HUMAN = "HUMAN"
LABELS = (AI, HUMAN)
