"""The parts of `python -m training.evaluate`: what it reads (`inputs`), the scores of each sample and their
aggregates (`scoring`), and the Markdown, HTML, frame strips and plots written from them (`report`)."""
