"""`promptrelay bench`: a load generator over real Socket.IO clients, with a report."""
