"""Request-free logic of the buyer API: chain access, the job index, idempotency, transactions,
job validation and the response views. Nothing here knows about HTTP requests; the routes in
``api.routes`` call into it."""
