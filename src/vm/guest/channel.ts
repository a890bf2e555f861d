/*
 * The command channel inside a Debian guest: the same protocol as the busybox /init (../guest.ts),
 * served by a small systemd service instead of PID 1.
 *
 * `suture-vm-ctl.service` starts early (no default dependencies, after udev), waits for the
 * virtio-serial port `suture.ctl` to appear, reads the per-boot nonce from the kernel command line
 * (`suture.nonce=`, written by the host for every boot), announces READY and runs each request under
 * coreutils `timeout -s KILL`, framed by the nonce markers the host parses (session.ts). It belongs to
 * the test harness only: an operator's host never has it.
 */

export const CTL_UNIT = 'suture-vm-ctl.service';
export const CTL_SCRIPT_PATH = '/usr/local/sbin/suture-vm-ctl';

export const CTL_SCRIPT = `#!/bin/bash
# suture-vm-ctl: the test harness's command channel (see src/vm/guest/channel.ts)
nonce=$(sed -n 's/.*suture\\.nonce=\\([0-9a-f]*\\).*/\\1/p' /proc/cmdline)
[ -n "$nonce" ] || { echo "suture-vm-ctl: no suture.nonce= on the kernel command line" >&2; exit 1; }
modprobe virtio_console 2>/dev/null
ctl=
for i in $(seq 1 300); do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = suture.ctl ] && [ -c "/dev/\${p##*/}" ] && ctl="/dev/\${p##*/}"
  done
  [ -n "$ctl" ] && break
  sleep 0.1
done
[ -n "$ctl" ] || { echo "suture-vm-ctl: no virtio-serial port suture.ctl" >&2; exit 1; }
mkdir -p /run/suture-vm
exec 3<>"$ctl"
printf '\\036SUTURE-READY %s 0\\036\\n' "$nonce" >&3
while read -r id tmo b64 <&3; do
  [ -n "$id" ] || continue
  echo "$b64" | base64 -d > /run/suture-vm/cmd
  printf '\\036SUTURE-BEGIN %s %s\\036' "$nonce" "$id" >&3
  (cd / && exec timeout -s KILL "$tmo" sh /run/suture-vm/cmd) < /dev/null >&3 2>&3 3>&-
  rc=$?
  printf '\\036SUTURE-END %s %s %s\\036\\n' "$nonce" "$id" "$rc" >&3
done
`;

export const CTL_UNIT_TEXT = `# the Suture test harness's command channel (src/vm/guest/channel.ts); not part of a product install
[Unit]
Description=Suture VM command channel
DefaultDependencies=no
After=systemd-udevd.service systemd-udev-trigger.service
Wants=systemd-udevd.service

[Service]
Type=simple
Environment=HOME=/root
Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=${CTL_SCRIPT_PATH}
Restart=no

[Install]
WantedBy=sysinit.target
`;
