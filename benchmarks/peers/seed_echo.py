"""
The seed's threaded echo server: ThreadingTCPServer with EchoHandler, a thread
per client, copied from the course page (only the port and the listen backlog
come from the command line).
"""

import sys
from socketserver import StreamRequestHandler, ThreadingTCPServer


class EchoHandler(StreamRequestHandler):
    def handle(self):
        print("Serving client:", self.client_address)
        for line in self.rfile:
            reply = b"S:" + line
            self.wfile.write(reply)


PORT = int(sys.argv[1])
ThreadingTCPServer.allow_reuse_address = True
ThreadingTCPServer.request_queue_size = int(sys.argv[2])
srv = ThreadingTCPServer(("127.0.0.1", PORT), EchoHandler)
try:
    srv.serve_forever()
    print("Serving forever at port", PORT)
except:  # noqa: E722 (the seed's own code)
    print("Closing the server.")
    srv.server_close()
