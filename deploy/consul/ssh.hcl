# An SSH service whose check goes through a reflector: the node connects to the reflector's
# port 10022 (`--map 10022:22`) and is connected back to its own port 22, across the
# network both ways. The check reads sshd's banner, which is exact on both reflector paths:
# in splice mode the reflector accepts before it connects back, so a check that only
# connects (Consul's `tcp`) would pass for a moment with sshd down.
#
# Script checks need `enable_local_script_checks = true` on the agent. Exit 0 (banner
# read) is passing; any failure exits 2, critical: refused, reset, filtered (timeout 5 s)
# or not SSH. `reflector.service.consul` is the reflector's address (here registered in
# Consul itself; any name or IP the node can reach will do).
service {
  name = "ssh"
  port = 22
  check {
    id       = "ssh-through-reflector"
    name     = "SSH banner through the reflector"
    args     = ["timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/reflector.service.consul/10022 && head -c 4 <&3 | grep -qx SSH- || exit 2"]
    interval = "30s"
    timeout  = "10s"
  }
}
