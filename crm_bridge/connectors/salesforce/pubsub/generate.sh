#!/bin/sh
# Regenerate pubsub_pb2.py and pubsub_pb2_grpc.py from pubsub.proto.
#
# Needs grpcio-tools (pip install grpcio-tools).  Run from anywhere; the modules are generated
# with package-qualified imports (crm_bridge.connectors.salesforce.pubsub.pubsub_pb2), which is
# why protoc runs from the repository root.  The generated modules check the installed grpcio
# and protobuf at import time: the grpcio-tools release used here sets the lowest grpcio the
# package can run with (see the salesforce-cdc extra in pyproject.toml).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
cd "$root"
python -m grpc_tools.protoc \
    -I . \
    --python_out=. \
    --pyi_out=. \
    --grpc_python_out=. \
    crm_bridge/connectors/salesforce/pubsub/pubsub.proto
