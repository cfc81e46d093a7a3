print("hako")
