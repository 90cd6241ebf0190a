"""HTTP API: thin aiohttp handlers (parse -> authorize -> call a service -> respond)."""
