/*
 * The guest side of the harness: the /init the kernel runs from the initramfs.
 *
 * It mounts the pseudo filesystems, loads the requested modules in dependency order, brings the
 * network up when asked, then either hands the console to a person (`shell` mode) or serves commands
 * on the second serial port (`agent` mode).
 *
 * Why a second port: the kernel writes its messages to ttyS0 (the console) at any moment, in the
 * middle of anything a script prints. Commands and their output travel on a virtio-serial port named
 * `suture.ctl` (not a tty: no echo, no CR/LF translation, flow control by virtio queues), which the
 * kernel never writes to; /init loads virtio_pci and virtio_console first. Each request is one line,
 * `<id> <timeout-seconds> <base64 script>`; each reply is framed by markers carrying a per-boot nonce
 * the script cannot guess:
 *
 *   \x1eSUTURE-BEGIN <nonce> <id>\x1e <raw output> \x1eSUTURE-END <nonce> <id> <exit status>\x1e\n
 *
 * Readiness is announced once as `\x1eSUTURE-READY <nonce> <init errors>\x1e`. A command runs under
 * busybox `timeout -s KILL`, so a hung script is killed in the guest and the session stays usable.
 */

export const MARK = '\x1e';

/** /init: busybox sh. Reads its settings from /suture/config (written per boot). */
export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /root /sbin /usr/bin /usr/sbin /etc
/bin/busybox --install -s
export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=linux
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
hostname suture-vm
. /suture/config
: > /tmp/suture-init.err
for m in $SUTURE_LOAD; do
  insmod "/lib/modules/$(uname -r)/$m" 2>>/tmp/suture-init.err || echo "insmod $m failed" >> /tmp/suture-init.err
done
if [ "$SUTURE_MODE" = disk ]; then
  # a Debian guest (guest/): mount its disk and hand over to its systemd
  mkdir -p /newroot
  i=0
  until [ -b /dev/vda ] || [ $i -ge 100 ]; do sleep 0.05; i=$((i+1)); done
  mount -t ext4 /dev/vda /newroot || { echo "suture: cannot mount /dev/vda" > /dev/kmsg; poweroff -f; }
  umount /sys/kernel/debug /sys/kernel/tracing /dev/pts /tmp 2>/dev/null
  mount --move /dev /newroot/dev; mount --move /proc /newroot/proc; mount --move /sys /newroot/sys
  exec switch_root /newroot /sbin/init
fi
ip link set lo up
if [ "$SUTURE_NET" = 1 ]; then
  if ip link set eth0 up 2>>/tmp/suture-init.err; then
    udhcpc -i eth0 -q -f -n -t 10 -T 1 -s /suture/udhcpc.sh >/tmp/udhcpc.log 2>&1 || echo "udhcpc: no address for eth0" >> /tmp/suture-init.err
  else
    echo "no eth0 (is virtio_net loaded?)" >> /tmp/suture-init.err
  fi
fi
if [ "$SUTURE_MODE" = shell ]; then
  [ -s /tmp/suture-init.err ] && cat /tmp/suture-init.err
  echo "suture vm: $(uname -r) ready; exit the shell to power off"
  setsid cttyhack sh -l
  poweroff -f
fi
# the command channel: the virtio-serial port named suture.ctl (its /dev node appears once the host
# side has announced the port, shortly after virtio_console loads); kept open for the whole session
ctl=
i=0
while [ -z "$ctl" ] && [ $i -lt 100 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat $p/name 2>/dev/null)" = suture.ctl ] && [ -c "/dev/\${p##*/}" ] && ctl="/dev/\${p##*/}"
  done
  [ -n "$ctl" ] || { sleep 0.1; i=$((i+1)); }
done
if [ -z "$ctl" ]; then
  echo "suture: no virtio-serial port suture.ctl (is virtio_console loaded?)" > /dev/kmsg
  poweroff -f
fi
exec 3<>"$ctl"
nerr=$(wc -l < /tmp/suture-init.err)
printf '\\036SUTURE-READY %s %s\\036\\n' "$SUTURE_NONCE" "$nerr" >&3
while read -r id tmo b64 <&3; do
  [ -n "$id" ] || continue
  echo "$b64" | base64 -d > /tmp/.suture-cmd
  printf '\\036SUTURE-BEGIN %s %s\\036' "$SUTURE_NONCE" "$id" >&3
  (cd / && exec timeout -s KILL "$tmo" sh /tmp/.suture-cmd) < /dev/null >&3 2>&3 3>&-
  rc=$?
  printf '\\036SUTURE-END %s %s %s\\036\\n' "$SUTURE_NONCE" "$id" "$rc" >&3
done
poweroff -f
`;

/** udhcpc's hook: configure the lease (QEMU user networking: 10.0.2.15/24 via 10.0.2.2). */
export const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew)
    ifconfig "$interface" "$ip" netmask "\${subnet:-255.255.255.0}" up
    for r in $router; do route add default gw "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
  deconfig) ifconfig "$interface" 0.0.0.0 ;;
esac
exit 0
`;

/** agent: serve commands; shell: a person's console; disk: switch to the Debian root on /dev/vda */
export type GuestMode = 'agent' | 'shell' | 'disk';

export interface GuestConfig {
  nonce: string;
  mode: GuestMode;
  net: boolean;
  /** module paths relative to /lib/modules/<release>, in load order */
  load: readonly string[];
}

const SAFE = /^[A-Za-z0-9._/+-]*$/;

export function renderGuestConfig(c: GuestConfig): string {
  for (const v of [c.nonce, ...c.load]) {
    if (!SAFE.test(v)) throw new Error(`unsafe value for the guest config: ${JSON.stringify(v)}`);
  }
  return [
    `SUTURE_NONCE=${c.nonce}`,
    `SUTURE_MODE=${c.mode}`,
    `SUTURE_NET=${c.net ? 1 : 0}`,
    `SUTURE_LOAD='${c.load.join(' ')}'`,
    '',
  ].join('\n');
}
