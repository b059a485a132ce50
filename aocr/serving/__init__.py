"""`aocr serve`'s parts: the server (`server`, which aocr.cli.serve starts with a ServeOptions), one servable
model (`servables`), TF Serving's REST API (`rest`, `rest_json`), its gRPC API (`grpc_api`), request batching
(`batching`), shards (`shards`), the request log (`traffic`) and TF Serving's error codes (`status`).

None of them imports the model graph code or the export verb: a SavedModel (aocr.core.savedmodel) is all they
need, and they import nothing of aocr but aocr.core (pyproject.toml's import contracts).
"""
