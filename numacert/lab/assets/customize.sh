#!/bin/sh
# mmdebstrap --customize-hook: runs on the host with the finished root filesystem as $1 and
# the staged lab files as $2 (an overlay tree copied over the root).
set -eu
root="$1"
stage="$2"

cp -a "$stage/overlay/." "$root/"
chmod 0755 "$root/usr/sbin/lab-init" "$root/usr/local/sbin/lab-kubelet"
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
