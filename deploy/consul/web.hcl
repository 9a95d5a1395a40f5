# An HTTP service whose check goes through a reflector: the node asks the reflector's port
# 10080 (`--map 10080:80`) and is connected back to its own port 80. Consul's `http` check
# is exact on both reflector paths (it needs a response, not just a connection): 2xx is
# passing, 429 warning, anything else, a refused or reset connection or no answer within
# `timeout`, critical. `reflector.service.consul` is the reflector's address.
service {
  name = "web"
  port = 80
  check {
    id       = "web-through-reflector"
    name     = "HTTP /healthz through the reflector"
    http     = "http://reflector.service.consul:10080/healthz"
    method   = "GET"
    interval = "10s"
    timeout  = "5s"
  }
}
