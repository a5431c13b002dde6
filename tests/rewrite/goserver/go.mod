module rwserver

go 1.19
