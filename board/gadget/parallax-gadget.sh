#!/bin/sh
# Set up (or tear down) the USB Audio Class 2 gadget the computer sees as a USB sound card.
# Run by parallax-gadget.service: `parallax-gadget.sh up` / `parallax-gadget.sh down`.
#
# Needs the USB-C port in device mode (board/config.txt.fragment: dtoverlay=dwc2,
# dr_mode=peripheral) and the libcomposite + usb_f_uac2 modules.
#
# Sample rates: 48 kHz only, both directions, 16-bit, mono: what a softphone uses for a
# headset, and what the bridge runs at, so nothing is resampled on the computer side.
# Sync: asynchronous (c_sync=async): the gadget tells the host its consumption rate through
# the feedback endpoint, so host playback follows the box's clock within fb_max ppm; the
# bridge's own drift control covers the headset clock and whatever is left.
set -eu

GADGET=/sys/kernel/config/usb_gadget/parallax
FUNCTION=$GADGET/functions/uac2.usb0
SERIAL=$(sed -n 's/^Serial\s*:\s*//p' /proc/cpuinfo 2>/dev/null || true)
[ -n "$SERIAL" ] || SERIAL=0000000000000000

up() {
    modprobe libcomposite
    modprobe usb_f_uac2 2>/dev/null || true
    mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
    if [ -d "$GADGET" ]; then
        echo "gadget already configured"
        return 0
    fi
    mkdir -p "$GADGET"
    cd "$GADGET"
    echo 0x1d6b > idVendor   # Linux Foundation
    echo 0x0104 > idProduct  # Multifunction Composite Gadget
    echo 0x0100 > bcdDevice
    echo 0x0200 > bcdUSB
    echo 0xEF > bDeviceClass     # miscellaneous: interface association descriptors
    echo 0x02 > bDeviceSubClass
    echo 0x01 > bDeviceProtocol
    mkdir -p strings/0x409
    echo "Parallax" > strings/0x409/manufacturer
    echo "Parallax Edge Headset" > strings/0x409/product
    echo "$SERIAL" > strings/0x409/serialnumber

    mkdir -p "$FUNCTION"
    # c_* = the gadget captures (the computer plays: the buyer); p_* = the gadget plays
    # (the computer records: the rep). Both mono 48 kHz S16.
    echo 48000 > "$FUNCTION/c_srate"
    echo 48000 > "$FUNCTION/p_srate"
    echo 1 > "$FUNCTION/c_chmask"
    echo 1 > "$FUNCTION/p_chmask"
    echo 2 > "$FUNCTION/c_ssize"
    echo 2 > "$FUNCTION/p_ssize"
    echo async > "$FUNCTION/c_sync"
    # Newer kernels (>= 5.14/5.18) expose more knobs; set them where present.
    [ -e "$FUNCTION/fb_max" ] && echo 1000 > "$FUNCTION/fb_max"            # feedback range, ppm
    [ -e "$FUNCTION/req_number" ] && echo 2 > "$FUNCTION/req_number"        # small = low latency
    [ -e "$FUNCTION/function_name" ] && echo "Parallax Edge" > "$FUNCTION/function_name"
    [ -e "$FUNCTION/c_volume_present" ] && echo 0 > "$FUNCTION/c_volume_present"
    [ -e "$FUNCTION/p_volume_present" ] && echo 0 > "$FUNCTION/p_volume_present"

    mkdir -p configs/c.1/strings/0x409
    echo "Headset" > configs/c.1/strings/0x409/configuration
    echo 250 > configs/c.1/MaxPower   # mA: the box draws its own power
    ln -s "$FUNCTION" configs/c.1/

    udc=$(ls /sys/class/udc | head -n 1)
    if [ -z "$udc" ]; then
        echo "no USB device controller: is dtoverlay=dwc2,dr_mode=peripheral set?" >&2
        exit 1
    fi
    echo "$udc" > UDC
    echo "UAC2 gadget bound to $udc"
}

down() {
    [ -d "$GADGET" ] || return 0
    cd "$GADGET"
    echo "" > UDC 2>/dev/null || true
    rm -f configs/c.1/uac2.usb0
    rmdir configs/c.1/strings/0x409 configs/c.1 2>/dev/null || true
    rmdir "$FUNCTION" 2>/dev/null || true
    rmdir strings/0x409 2>/dev/null || true
    cd /
    rmdir "$GADGET"
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
