#!/bin/sh
# mmdebstrap --customize-hook: runs on the host with the finished root filesystem as $1 and
# the staged lab files as $2 (an overlay tree copied over the root).
set -eu
root="$1"
stage="$2"

cp -a "$stage/overlay/." "$root/"
chmod 0755 "$root/usr/local/sbin/lab-setup" "$root/usr/local/sbin/lab-images"

# systemd units: the lab's two boot steps are enabled; the kubelet is enabled by `lab up` once
# its binary and configuration are installed. Timers and gettys a test node never needs are
# masked: under TCG every unit costs boot time.
mkdir -p "$root/etc/systemd/system/sysinit.target.wants" "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/lab-setup.service "$root/etc/systemd/system/sysinit.target.wants/lab-setup.service"
ln -sf /etc/systemd/system/lab-images.service "$root/etc/systemd/system/multi-user.target.wants/lab-images.service"
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
        fstrim.timer getty@tty1.service serial-getty@ttyS0.service systemd-timesyncd.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
chmod 0700 "$root/root/.ssh"
chmod 0600 "$root/root/.ssh/authorized_keys"

# A small initrd: only the modules needed to mount the virtio root disk (MODULES=list).
kver="$(ls "$root/lib/modules" | sort -V | tail -n 1)"
conf="$root/etc/lab-initramfs"
rm -rf "$conf"
cp -a "$root/etc/initramfs-tools" "$conf"
sed -i -e 's/^MODULES=.*/MODULES=list/' -e 's/^COMPRESS=.*/COMPRESS=gzip/' "$conf/initramfs.conf"
cp "$stage/initramfs-modules" "$conf/modules"
chroot "$root" mkinitramfs -d /etc/lab-initramfs -o /boot/lab-initrd.img "$kver"
echo "$kver" >"$root/etc/lab/kernel-version"

# The stock initrd (MODULES=most) is not used; drop it to keep the image small.
rm -f "$root"/boot/initrd.img-*
# Package caches and lists are useless offline.
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
