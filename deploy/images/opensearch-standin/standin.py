"""OpenSearch STAND-IN: answers GET / with cluster info, and /_cluster/health, nothing else."""

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/_cluster/health"):
            body = {"cluster_name": "shophosting-standin", "status": "green", "number_of_nodes": 1}
        elif self.path in ("/", ""):
            body = {
                "name": socket.gethostname(),
                "cluster_name": "shophosting-standin",
                "version": {"distribution": "opensearch", "number": "2.0.0-shophosting-standin"},
                "tagline": "The OpenSearch Project: https://opensearch.org/ (stand-in)",
            }
        else:
            self.send_error(404, "the stand-in only answers / and /_cluster/health")
            return
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 9200), Handler).serve_forever()  # noqa: S104 - the store network only
