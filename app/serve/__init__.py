"""The half that serves: the engine (prompt -> distributions), plots, the Gradio page and API, and the CLI.
It reads what the making half wrote (models, corpora, datastores) and never imports it."""
