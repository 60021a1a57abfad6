"""The FBP network protocol: one module per sub-protocol, a dispatcher, a reply builder."""
