-- wrk script: POST /v1/evaluate with one campaign application that MC-001
-- blocks (the full catalog loaded). See BENCHMARKS.md, "HTTP evaluate":
--   wrk -t1 -c1 -d20s --latency -s benches/http_evaluate.lua http://127.0.0.1:9464/v1/evaluate
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"event_id":"CA-2026-0001","type":"campaign_application","occurred_at":"2026-11-07T15:00:00+08:00","branch":"yichang","campaign_id":"K1","applicant_id":"E1","budget_cny":301000,"subsidy_per_user_cny":301,"expected_users":1000,"partner_id":null}'
