"""Bindings from finalstate's scenarios to real implementations (targets), and the wire codec."""
