"""Instruction-based video editing with in-context learning (ICVE) on HunyuanVideo's transformer."""
