"""Stubs of Salesforce's Pub/Sub API (gRPC), generated from :file:`pubsub.proto`.

Why checked in rather than generated at install: a wheel then needs no protoc, and the stubs
that talk to Salesforce are the ones the tests ran.  ``generate.sh`` regenerates them; never edit
``pubsub_pb2*.py`` by hand (ruff and mypy skip them).  Importing this package imports nothing:
``pubsub_pb2`` needs protobuf and ``pubsub_pb2_grpc`` needs grpcio, both from the
``salesforce-cdc`` extra.
"""
