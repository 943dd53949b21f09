//! One client connection: buffers, protocol detection, back-pressure.
