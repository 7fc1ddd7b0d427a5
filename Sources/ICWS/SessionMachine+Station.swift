import Logging

/// The station: commands one at a time, the restore after a new session, and their answers.
extension SessionMachine {
    /// Starts the next station operation when none is under way.
    mutating func dispatchStation() {
        while stationBusy == nil, !stationQueue.isEmpty {
            var op = stationQueue.removeFirst()
            guard let command = op.command else {
                // The restore applies the last requested settings, unless the
                // session ended or a command already connected the station.
                guard case .live(let l) = phase, l.epoch == op.epoch, let requested = station.requested, !station.connected else {
                    restoreStepDone(epoch: op.epoch)
                    continue
                }
                op.settings = requested
                stationBusy = op
                out.append(.station(op.ticket, l.session, .put(requested)))
                return
            }
            guard case .live(let l) = phase, status.state == .connected else {
                if case .setReady = command, station.requested == nil {
                    out.append(.replyStation(op.ticket, .failure(.noStation)))
                } else {
                    out.append(.replyStation(op.ticket, .failure(.icws(ICWSError(kind: .notConnected, message: "no ICWS session now")))))
                }
                continue
            }
            op.epoch = l.epoch
            switch command {
            case .connect(let settings):
                op.settings = settings
                out.append(.station(op.ticket, l.session, .put(settings)))
            case .disconnect:
                out.append(.station(op.ticket, l.session, .delete))
            case .setReady(let ready):
                guard var settings = station.requested else {
                    out.append(.replyStation(op.ticket, .failure(.noStation)))
                    continue
                }
                settings.readyForInteractions = ready
                op.settings = settings
                out.append(.station(op.ticket, l.session, .put(settings)))
            }
            stationBusy = op
        }
    }

    mutating func stationAnswered(_ t: Ticket, _ result: Result<Void, ICWSError>) {
        guard let op = stationBusy, op.ticket == t else { return }
        stationBusy = nil
        let isCurrent = current?.epoch == op.epoch
        switch (result, op.command) {
        case (.success, nil):
            if isCurrent, let settings = op.settings {
                station.connected = true
                station.ready = settings.readyForInteractions
                flush()
                log(.info, "station restored", ["icws.station": "\(settings.workstation ?? settings.remoteNumber ?? settings.kind.rawValue)"])
            }
            restoreStepDone(epoch: op.epoch)
        case (.failure(let error), nil):
            if isCurrent, !sessionFailed(error, epoch: op.epoch) {
                status.lastError = error.shortReason
                flush()
                log(.error, "station could not be restored; trying again", ["icws.error": "\(error)"])
                restoreStepDone(epoch: op.epoch)
                scheduleStationRetry(fetch: false)
            }
        case (.success, .disconnect?):
            station.requested = nil
            if isCurrent {
                station.connected = false
                station.ready = false
            }
            flush()
            out.append(.replyStation(t, .success(())))
        case (.success, _?):
            // An answer for a session that ended meanwhile says nothing of the
            // current one: the restore applies `requested`.
            station.requested = op.settings
            if isCurrent, let settings = op.settings {
                station.connected = true
                station.ready = settings.readyForInteractions
            }
            flush()
            out.append(.replyStation(t, .success(())))
        case (.failure(let error), _?):
            _ = sessionFailed(error, epoch: op.epoch)
            out.append(.replyStation(t, .failure(.icws(error))))
        }
        dispatchStation()
    }


    mutating func restoreStepDone(epoch e: Epoch) {
        guard live?.epoch == e else { return }
        live?.stepBusy = false
        nextStep()
    }
}
