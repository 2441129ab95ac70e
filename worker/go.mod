module github.com/wahook/wahook/worker

go 1.26.8

require github.com/wahook/wahook/shared v0.0.0

replace github.com/wahook/wahook/shared => ../shared
