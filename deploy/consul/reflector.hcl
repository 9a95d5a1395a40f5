# The reflector itself, on the reflector host, so nodes find it as reflector.service.consul
# and Consul knows when it is not ready (its /readyz, with `metrics = "127.0.0.1:9477"` in
# /etc/reflector/reflector.toml). Consul runs this check on the reflector host.
service {
  name = "reflector"
  port = 10022
  check {
    id       = "reflector-ready"
    name     = "reflector /readyz"
    http     = "http://127.0.0.1:9477/readyz"
    interval = "10s"
    timeout  = "2s"
  }
}
