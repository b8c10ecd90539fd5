-- wrk script (scripts/bench): POST /api/links with a generated code (no alias).
wrk.method = "POST"
wrk.path = "/api/links"
wrk.headers["Content-Type"] = "application/json"
-- scripts/bench creates the key (`origin keys create`) and exports it.
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "")
wrk.body = '{"url":"https://example.com/bench/created?utm_source=bench"}'
