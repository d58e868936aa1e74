"""Transport: Socket.IO and HTTP gateway, authentication, the command line."""
