// HakoImage: content store, tar, unpack, import
