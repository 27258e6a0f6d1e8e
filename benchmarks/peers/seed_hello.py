"""
The seed's greeting server: TCPServer with HelloHandler, one client at a time,
copied from the course page (only the port and the listen backlog come from
the command line).
"""

import sys
from socketserver import BaseRequestHandler, TCPServer


class HelloHandler(BaseRequestHandler):
    def handle(self):
        print("Serving client:", self.client_address)
        self.request.sendall(b"Hello Client! I am a HelloHandler\r\n")


PORT = int(sys.argv[1])
TCPServer.allow_reuse_address = True
TCPServer.request_queue_size = int(sys.argv[2])
srv = TCPServer(("127.0.0.1", PORT), HelloHandler)
try:
    srv.serve_forever()
    print("Serving forever at port", PORT)
except:  # noqa: E722 (the seed's own code)
    print("Closing the server.")
    srv.server_close()
