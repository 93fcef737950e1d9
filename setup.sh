#!/usr/bin/env bash
# Everything tectonic needs on a fresh Debian (bookworm) machine, installed only when
# missing, so running it again is cheap. Run as root (apt), from the project root.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  python3-venv python3-pip   # the project's virtual environment
  gcc libc6-dev python3-dev  # the compiled loops (checkers/*/_*.c, core/history/_*.c)
  iproute2 iptables procps   # network namespaces, partitions, packet loss, process control
  util-linux mount           # unshare and mounts for the unprivileged (user-namespace) path
  fuse3                      # the disk fault's lazy filesystem (libfuse3, fusermount3)
  faketime                   # per-node clocks for raftkv (libfaketime)
  etcd-server etcd-client    # the etcd target and its benchmark peer
  graphviz                   # SVG pictures of Elle's cycles
  chromium                   # headless browser for the report/serve tests
  openssh-server openssh-client sudo  # the ssh backend's tests: an sshd inside each namespace
  docker.io debootstrap      # the docker backend: a daemon, and a Debian base image built locally
  mariadb-server galera-4 rsync postgresql-15  # the SQL targets (servers started by tectonic only)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: missing Debian packages: ${missing[*]}; run this script as root once" >&2
    exit 254
  fi
  echo "setup.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  # Packages must not start their system services (mariadb, postgresql would listen on the
  # host): policy-rc.d answering 101 forbids it for the install, unless one is already there.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# A system mariadb or postgresql server running anyway (from an install before this script)
# is stopped by its own pid file: tectonic's SQL targets start servers of their own, and a
# system one would listen on the host. (Not the init script: its fallback is `killall
# mariadbd`, which would also stop the servers of tests running now.)
if [ "$(id -u)" = 0 ]; then
  if [ -s /run/mysqld/mysqld.pid ]; then
    kill -TERM "$(cat /run/mysqld/mysqld.pid)" 2>/dev/null || true
  fi
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h | while read -r version cluster _port status _rest; do
      if [ "$status" = online ]; then pg_ctlcluster "$version" "$cluster" stop || true; fi
    done
  fi
fi

# The Python environment: .venv with tectonic installed in editable mode. Made from
# Debian's python3 where there is one, not from whatever python3 comes first on PATH (a
# pyenv build, say): Debian builds it with PGO and LTO, and the checkers run 10-15% faster
# on it (bench/linearizability.py's multi-5 and multi-6). TECTONIC_PYTHON chooses another.
if [ ! -x .venv/bin/python ]; then
  python=${TECTONIC_PYTHON:-}
  if [ -z "$python" ]; then
    if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=python3; fi
  fi
  "$python" -m venv .venv
fi
stamp=.venv/.tectonic-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test,ssh,docker,sql,dask]' >&2
  touch "$stamp"
fi

# The compiled loops (linearizability: checkers/linearizable/_*.c; Elle's columnar pass:
# checkers/elle/_feed.c; the EDN reader: core/history/_edn.c), built in place for the
# venv's own Python (its headers, its extension suffix) whenever a source, or a header
# beside it, is newer than its build.
# Without them the Python loops run (same results, slower); a failed build says so and
# stops here, since the test suite expects them.
for source in checkers/*/_*.c core/history/_*.c; do
  [ -e "$source" ] || continue
  built=$(.venv/bin/python - "$source" <<'PY'
import os, sys, sysconfig
print(os.path.splitext(sys.argv[1])[0] + sysconfig.get_config_var("EXT_SUFFIX"))
PY
)
  stale=0
  if [ ! -f "$built" ] || [ "$source" -nt "$built" ]; then stale=1; fi
  for header in "$(dirname "$source")"/_*.h; do   # e.g. the struct both linearizability loops share
    if [ -e "$header" ] && [ "$header" -nt "$built" ]; then stale=1; fi
  done
  if [ "$stale" = 1 ]; then
    include=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    if ! gcc -O2 -Wall -Wno-missing-field-initializers -shared -fPIC -I"$include" -o "$built.tmp" "$source"; then
      echo "setup.sh: could not compile $source (gcc, and the headers of $(.venv/bin/python -c 'import sys; print(sys.executable)'))" >&2
      rm -f "$built.tmp"
      exit 1
    fi
    mv "$built.tmp" "$built"
  fi
done
