"""`aocr serve`'s parts: one servable model (`servables`), TF Serving's REST API (`rest`, `rest_json`),
its gRPC API (`grpc_api`), request batching (`batching`) and TF Serving's error codes (`status`).

None of them imports the model graph code or the export verb: a SavedModel is all they need.
"""
