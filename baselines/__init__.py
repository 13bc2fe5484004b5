"""The nine comparison methods: SR models (sr/), MEF methods (mef/) and the joint CF-Net (joint/)."""
