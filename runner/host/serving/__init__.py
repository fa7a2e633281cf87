"""The server scenario's launching side (issue 26): spec, launcher, load client, cell."""
