"""Memory Decoder Explorer: the pipeline that makes Memory Decoders and the app that shows them."""
