#!/bin/sh
# deps.sh PKG... -- install the Debian packages that are missing (as root, or through sudo).
set -eu
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
export DEBIAN_FRONTEND=noninteractive
# Installing openssh-server or postgresql must not start the system's own
# daemons: they would take 0.0.0.0:22 and 5432 from the test fleet.  A
# policy-rc.d that says 101 ("action forbidden") is Debian's switch for that.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
fi
rc=0
$SUDO apt-get update -qq || rc=$?
# shellcheck disable=SC2086
[ $rc -ne 0 ] || $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null || rc=$?
[ -z "$policy" ] || $SUDO rm -f "$policy"
exit $rc
