"""The parts of `python -m training.evaluate`: per-sample scores and their aggregates (`scoring`), and the Markdown,
HTML, frame strips and plots written from them (`report`)."""
