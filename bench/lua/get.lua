-- GET of one fixed path (BENCH_PATH): wrk sends its pre-built request, the cheapest for the client.
wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH") or "/health"
