"""What both halves share: paths and settings, recipes, the corpus format, token streams, model loading, the kNN
key, distributions and the datastore. Nothing here imports gradio or trains a model."""
