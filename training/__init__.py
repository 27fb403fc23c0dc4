"""Training-side code: data curation, the procedural world that stands in for real footage, and training."""
