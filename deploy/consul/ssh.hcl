# An SSH service whose check goes through a reflector: `reflector probe` on the node
# connects to the reflector's port 10022 (`--map 10022:22`) and is connected back to its
# own port 22, across the network both ways. It reads sshd's banner, which is exact on both
# reflector paths (in splice mode the reflector accepts before it connects back, so a check
# that only connects, Consul's `tcp`, would pass for a moment with sshd down).
#
# Script checks need `enable_local_script_checks = true` on the agent. Exit 0 is passing;
# 2, critical, is this node's sshd failing (refused, reset, filtered, not SSH) through a
# working reflector; 1, warning, is the reflector or the network failing (its self-test
# through `--map 19999:19999` on the reflector did not come back), so a reflector outage
# does not page every service owner. `reflector.service.consul` is the reflector's
# address (here registered in Consul itself; any name or IP the node can reach will do).
service {
  name = "ssh"
  port = 22
  check {
    id       = "ssh-through-reflector"
    name     = "SSH banner through the reflector"
    args     = ["reflector", "probe", "--via", "reflector.service.consul:10022", "--service", "22", "--name", "ssh", "--self-test", "19999", "--expect-banner", "SSH-", "--timeout", "5s"]
    interval = "30s"
    timeout  = "10s"
  }
}
