"""IOU (IOS on Unix) for gns3core: your IOU image and licence, driven as GNS3 1.5 drove it, with no iouyap needed."""
