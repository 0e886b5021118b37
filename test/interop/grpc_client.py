"""A gRPC client on gRPC core's own HTTP/2 stack (Python grpcio), for interoperability tests.

Reads calls as JSON from stdin: [{"target", "method", "streaming", "request" (hex), "metadata",
"timeout"}]; makes each on one channel; prints JSON: [{"code", "details", "trailers", "responses"
(hex)}]. Messages stay bytes: the test encodes and decodes them with the shipped .proto files.
"""
import json
import sys

import grpc


def main():
    calls = json.load(sys.stdin)
    results = []
    channels = {}
    for c in calls:
        channel = channels.get(c["target"]) or grpc.insecure_channel(c["target"])
        channels[c["target"]] = channel
        metadata = [(k, v) for k, v in c.get("metadata", {}).items()]
        request = bytes.fromhex(c["request"])
        out = {"code": 0, "details": "", "trailers": {}, "responses": []}
        try:
            if c.get("streaming"):
                call = channel.unary_stream(c["method"])(request, metadata=metadata, timeout=c.get("timeout"))
                for message in call:
                    out["responses"].append(message.hex())
                out["trailers"] = dict(call.trailing_metadata() or [])
            else:
                response, call = channel.unary_unary(c["method"]).with_call(request, metadata=metadata, timeout=c.get("timeout"))
                out["responses"].append(response.hex())
                out["trailers"] = dict(call.trailing_metadata() or [])
        except grpc.RpcError as err:
            out["code"] = err.code().value[0]
            out["details"] = err.details() or ""
            out["trailers"] = dict(err.trailing_metadata() or [])
        results.append(out)
    for channel in channels.values():
        channel.close()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
