"""Custom components of the assistant's NLU pipeline."""
