-- wrk script (scripts/bench): POST /api/links with a generated code (no alias).
wrk.method = "POST"
wrk.path = "/api/links"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"url":"https://example.com/bench/created?utm_source=bench"}'
