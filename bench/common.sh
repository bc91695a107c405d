# Shared by the bench/*.sh scripts (sourced, not run).

# need COMMAND PACKAGE: installs the Debian package when the command is missing.
need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }

# wrk_fields: reads `wrk --latency` output, prints "req/s p50 p99 non2xx" (non2xx is 0 when
# every answer was 2xx/3xx).
wrk_fields() {
  awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
       END {print rps, p50, p99, (bad == "" ? 0 : bad)}'
}
