# Config package of prereg's launcher plugin: conf/hydra/launcher/*.yaml are the profiles,
# found through pkg://hydra_plugins.prereg_launchers.conf (see ../search_path.py).
